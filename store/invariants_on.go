//go:build invariants

package store

// invariants turns on checks too costly for production: every mutation
// and every apply asserts that it wrote no more undo records than it
// budgeted (budget.go). The tests run with it in CI (.ci/run).
const invariants = true
