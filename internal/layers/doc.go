// Package layers holds only a test: it checks the import rules of DESIGN.md section 3 on every package of
// the module, with go list, so that `make test` fails when a layer reaches past its boundary.
package layers
