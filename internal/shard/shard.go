// Package shard decides which replica of `serve` harvests which tenant,
// and holds the leases that make a handover safe.
//
// Ownership: tenant → replica by jump consistent hashing (Lamping and
// Veach, "A Fast, Minimal Memory, Consistent Hash Algorithm", 2014) of a
// 64-bit FNV-1a hash of the tenant's name. Every tenant has exactly one
// owner for any replica count; going from N to N+1 replicas moves about
// 1/(N+1) of the tenants, all of them to the new replica. The hash and
// the algorithm decide where state lives: they must never change.
package shard

import (
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
)

// Hash is the 64-bit FNV-1a hash of key.
func Hash(key string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(key))
	return h.Sum64()
}

// jump maps key to one of buckets (≥ 1) buckets.
func jump(key uint64, buckets int) int {
	var b, j int64 = -1, 0
	for j < int64(buckets) {
		b = j
		key = key*2862933555777941757 + 1
		j = int64(float64(b+1) * (float64(int64(1)<<31) / float64((key>>33)+1)))
	}
	return int(b)
}

// Owner is the replica (0 … replicas-1) that harvests the tenant named
// key; replicas below 1 count as 1.
func Owner(key string, replicas int) int {
	if replicas <= 1 {
		return 0
	}
	return jump(Hash(key), replicas)
}

// Owns says whether replica index of count harvests the tenant key.
func Owns(key string, index, count int) bool {
	return Owner(key, count) == index
}

// ParseIndex reads a replica number: digits, or "auto" for the ordinal
// ending hostname (a StatefulSet pod "defenderharvester-3" is 3).
func ParseIndex(s, hostname string) (int, error) {
	s = strings.TrimSpace(s)
	if s == "auto" {
		i := strings.LastIndexByte(hostname, '-')
		if hostname == "" || i < 0 || i == len(hostname)-1 {
			return 0, fmt.Errorf("auto: the host name %q does not end in -<number> (a StatefulSet pod name such as defenderharvester-3); give the index as a number", hostname)
		}
		n, err := strconv.Atoi(hostname[i+1:])
		if err != nil || n < 0 {
			return 0, fmt.Errorf("auto: the host name %q does not end in -<number>; give the index as a number", hostname)
		}
		return n, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, errors.New("expected this replica's number (0, 1, …) or auto, got " + strconv.Quote(s))
	}
	return n, nil
}
