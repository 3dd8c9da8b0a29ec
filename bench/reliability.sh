#!/usr/bin/env bash
# Reliability figures: runs the end-to-end tests that prove the promises of
# docs/RELIABILITY.md against the emulated tenant and prints the figures
# they measure (kills, records lost and duplicated, late events, clamped
# pages, refused and stalled outputs, faults fired). Loopback only; about a
# minute on 2 cores.
#
#   bench/reliability.sh
set -euo pipefail
cd "$(dirname "$0")/.."
tests='TestNoLossWhenKilled|TestPageClampGivesTheSameHarvest|TestIngestionLagUpToDelayPlusOverlapLosesNothing|TestFaultyServicesGiveTheSameHarvest|TestChaosLosesNothing|TestReceiverOutageMidRun|TestRefusingOnlyOutputFailsTheRunAndLosesNothing|TestRefusingOutputBesideFilesIsSpooled|TestStalledEndpointsEndByTheDeadline|TestDamagedStateFileIsRefused|TestBackfillReadsOnlyWhatIsMissing|TestTenantMismatchIsRefused|TestDeadLettersExitThreeAndSayWhere|TestSkewedServicesLoseNothing'
echo "machine: $(nproc) cores, $(go version | cut -d' ' -f3), $(date -u +%Y-%m-%dT%H:%MZ)"
out=$(go test -count=1 -v -run "^(${tests})\$" ./internal/e2e 2>&1) || { echo "$out" | tail -50; exit 1; }
# The figures are the tests' log lines (t.Logf) and their results.
echo "$out" | grep -E '^(--- |\s+\w+_test\.go:[0-9]+: )' | sed -E 's/^\s+/  /'
