// Package gitops takes the settings from a git branch: each new commit is fetched, verified, checked out into
// a fresh work tree and validated, and only then handed to the daemon; the package also holds the webhook
// that asks for a fetch.
package gitops
