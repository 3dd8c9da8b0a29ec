//go:build race

package pipeline

// raceEnabled shrinks the scale tests under the race detector, which
// runs them ten times slower; what they prove does not depend on size.
const raceEnabled = true
