// Package tests holds shmkv's cross-process tests. Each test re-executes
// its own test binary as helper processes (os.Args[0] with
// -test.run=^TestHelperProcess$ and SHMKV_ROLE naming the role), so every
// process maps the store on its own, at its own address, and can be
// SIGKILLed for real.
//
// The crash tests (crash_test.go) need the fault points compiled in:
//
//	go test -tags shmkv_faults ./tests
package tests
