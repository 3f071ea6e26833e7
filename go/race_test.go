//go:build race

package auditbuf

// Under the race detector sync.Pool drops a quarter of what it is given, so pooled
// calls allocate now and then: allocation counts are checked without it.
func init() { raceEnabled = true }
