// Package engine holds plain values that describe a Docker engine's objects and the requests bee2d makes of
// it, shared by the planner and the Docker adapter; it imports no part of the Docker SDK.
package engine
