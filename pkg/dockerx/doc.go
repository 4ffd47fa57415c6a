// Package dockerx is the only door to the Docker engine: it connects to one host, lists and changes its containers, networks, volumes and images, and builds images, showing callers only plain types.
package dockerx
