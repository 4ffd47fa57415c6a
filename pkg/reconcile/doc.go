// Package reconcile turns settings into the desired state of each server, diffs it against an observed
// snapshot into a plan of explained actions, and executes that plan through a narrow Docker seam.
//
// The flow is observe → plan → execute: Observe lists live state (one list call when nothing changed),
// Diff is pure and golden-tested, and Executor is the only code here that changes a host.
package reconcile
