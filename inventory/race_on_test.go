//go:build race

package inventory

// raceEnabled: the race detector slows searches several times over, so
// timing checks only log under it.
const raceEnabled = true
