// Package e2e holds end-to-end tests that bring up whole stacks with the bee2d binary on the local Docker
// engine, with the outside world (Let's Encrypt, DNS) played by test servers on this machine.
package e2e
