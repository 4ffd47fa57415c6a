package dockerx

import (
	"context"
	"fmt"
	"io"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"
)

// RunContainer starts a created container and waits for it to exit, copying its output to out (nil:
// nowhere) as it comes. It returns the exit code. The wait is armed before the start, so a container that
// exits at once is not missed; ctx bounds the whole run (use the job's timeout).
func (c *Client) RunContainer(ctx context.Context, id string, out io.Writer) (int, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	waitC, errC := c.api.ContainerWait(ctx, id, container.WaitConditionNextExit)
	if err := c.StartContainer(ctx, id); err != nil {
		return -1, err
	}
	copied := make(chan error, 1)
	if out != nil {
		go func() {
			logs, err := c.api.ContainerLogs(ctx, id, container.LogsOptions{ShowStdout: true, ShowStderr: true, Follow: true})
			if err != nil {
				copied <- err
				return
			}
			defer logs.Close()
			_, err = stdcopy.StdCopy(out, out, logs)
			copied <- err
		}()
	} else {
		copied <- nil
	}
	select {
	case res := <-waitC:
		// The log stream ends when the container does; wait for the last lines.
		<-copied
		if res.Error != nil && res.Error.Message != "" {
			return int(res.StatusCode), fmt.Errorf("wait for container %s: %s", shortName(id), res.Error.Message)
		}
		return int(res.StatusCode), nil
	case err := <-errC:
		return -1, fmt.Errorf("wait for container %s: %w", shortName(id), err)
	case <-ctx.Done():
		return -1, fmt.Errorf("wait for container %s: %w", shortName(id), ctx.Err())
	}
}

func shortName(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
