package main

// Docker's health events, as the engine names their actions.
const (
	evHealthy   = "health_status: healthy"
	evUnhealthy = "health_status: unhealthy"
)
