//go:build unix

package sinktest

import (
	"syscall"
	"time"
)

// CPUTime is the CPU time (user + system) this process used so far, for
// benchmarks whose wall time suffers from other work on the machine;
// 0 where it cannot be read.
func CPUTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
