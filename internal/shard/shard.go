// Package shard decides which replica of `serve` harvests which tenant,
// and hands a tenant over between replicas through file leases, so that
// a tenant is never harvested by two replicas at once.
package shard

import (
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"os"
	"strconv"
	"strings"
)

// Owner returns the replica, in [0, replicas), that owns key: jump
// consistent hashing (Lamping & Veach, "A Fast, Minimal Memory, Consistent
// Hash Algorithm", 2014) over the FNV-1a 64-bit hash of key's bytes. When
// replicas grows from n to n+1, only about 1/(n+1) of the keys move, all
// of them to the new replica.
//
// Both the hash and the algorithm decide ownership across versions: a
// replica running a new version must agree with one running the old, so
// neither may ever change (TestOwnerIsPinned). Pass the tenant's canonical
// id; the key is hashed byte for byte. replicas < 1 counts as 1.
func Owner(key string, replicas int) int {
	if replicas <= 1 {
		return 0
	}
	if replicas > math.MaxInt32 {
		replicas = math.MaxInt32
	}
	h := fnv.New64a()
	h.Write([]byte(key))
	return int(jump(h.Sum64(), int32(replicas)))
}

// jump is the paper's JumpConsistentHash, unchanged.
func jump(key uint64, buckets int32) int32 {
	b, j := int64(-1), int64(0)
	for j < int64(buckets) {
		b = j
		key = key*2862933555777941757 + 1
		j = int64(float64(b+1) * (float64(int64(1)<<31) / float64((key>>33)+1)))
	}
	return int32(b)
}

// Owns reports whether replica index of count owns key. An index outside
// [0, count) owns nothing.
func Owns(key string, index, count int) bool {
	if count < 1 || index < 0 || index >= count {
		return false
	}
	return Owner(key, count) == index
}

// ParseIndex reads this replica's index: a number (0, 1, …) or "auto",
// the trailing number of the host name as a Kubernetes StatefulSet names
// its pods ("defenderharvester-3" → 3), from $HOSTNAME or else the
// system's host name.
func ParseIndex(s string) (int, error) {
	host := os.Getenv("HOSTNAME")
	if host == "" {
		host, _ = os.Hostname()
	}
	return parseIndex(s, host)
}

func parseIndex(s, host string) (int, error) {
	s = strings.TrimSpace(s)
	if strings.EqualFold(s, "auto") {
		i := strings.LastIndexByte(host, '-')
		n, err := strconv.Atoi(host[i+1:])
		if i < 0 || err != nil || n < 0 || !isDigits(host[i+1:]) {
			return 0, fmt.Errorf("shard index auto: host name %q does not end in -<number> as a StatefulSet pod's does (defenderharvester-3 → 3); set the index as a number", host)
		}
		return n, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || !isDigits(s) {
		return 0, fmt.Errorf("shard index %q: expected a number (0, 1, …) or \"auto\" (the trailing number of the host name, as in a StatefulSet: defenderharvester-3 → 3)", s)
	}
	return n, nil
}

func isDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}

// CheckIndex returns an error unless index is a valid replica of count.
func CheckIndex(index, count int) error {
	switch {
	case count < 1:
		return fmt.Errorf("shard count %d: there must be at least one replica", count)
	case index < 0 || index >= count:
		return fmt.Errorf("shard index %d is outside 0..%d for %d replicas; with auto, the StatefulSet's replicas must match the configured count", index, count-1, count)
	}
	return nil
}

// ErrLost is wrapped by Renew's error when the lease is no longer ours:
// it expired before it was renewed, or another replica holds it. The
// caller must stop harvesting the tenant at once.
var ErrLost = errors.New("lease lost")

// ErrNotHeld is wrapped by Renew's and Release's errors for a key this
// leaser does not hold.
var ErrNotHeld = errors.New("lease not held")
