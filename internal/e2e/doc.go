// Package e2e holds the end-to-end tests: the real command line and
// harvester against the emulated tenant over TLS on loopback, including
// runs killed with SIGKILL at arbitrary moments.
package e2e
