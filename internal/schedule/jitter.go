package schedule

import (
	"hash/fnv"
	"time"
)

// Offset returns the job's fixed delay in [0, jitter): FNV-1a 64 of
// tenant, a NUL byte and source, modulo jitter. Hundreds of tenants on the
// same schedule are spread over the jitter window instead of calling the
// APIs in the same second, and the same job gets the same offset after a
// restart or on another replica. Changing the hash moves every job once;
// harmless, but the golden test pins it so it is never done by accident.
func Offset(tenant, source string, jitter time.Duration) time.Duration {
	if jitter <= 0 {
		return 0
	}
	h := fnv.New64a()
	h.Write([]byte(tenant))
	h.Write([]byte{0}) // ("ab","c") and ("a","bc") differ
	h.Write([]byte(source))
	return time.Duration(h.Sum64() % uint64(jitter))
}

// offset is the delay the scheduler applies: for an interval spec the
// offset is a phase within one interval (a jitter longer than the interval
// adds nothing, and a job never waits longer than its interval for its
// first run); for a cron spec it delays every firing.
func offset(j Job) time.Duration {
	off := Offset(j.Tenant, j.Source, j.Jitter)
	if every := j.Spec.interval(); every > 0 {
		off %= every
	}
	return off
}
