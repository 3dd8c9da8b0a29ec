//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package auth

// lockFile is a no-op where flock is not available: the cache is then
// last-writer-wins across processes (each write is still atomic).
func lockFile(string) (unlock func(), err error) { return func() {}, nil }
