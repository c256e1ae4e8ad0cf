// Package memsize stands in for github.com/fjl/memsize, which reaches into runtime internals
// (runtime.stopTheWorld) that Go >= 1.23 no longer lets a package link to. geth 1.13.15 only
// uses it for the optional /memsize/ page of its --pprof server, which the consortium never starts.
package memsize
