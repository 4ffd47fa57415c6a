package backup

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/bee2d/bee2d/pkg/config"
	"github.com/bee2d/bee2d/pkg/dockerx"
	"github.com/bee2d/bee2d/pkg/labels"
)

// stopped is what a run stopped and must start again.
type stopped struct {
	containers []dockerx.Container
}

func (s *stopped) names() []string {
	var out []string
	for _, c := range s.containers {
		out = append(out, c.Name)
	}
	return out
}

// stopAll stops the given running containers, in order. If one fails, those stopped are started again.
func stopAll(ctx context.Context, eng Engine, cs []dockerx.Container, timeout time.Duration, log *zap.Logger) (*stopped, error) {
	st := &stopped{}
	for _, c := range cs {
		log.Info("stopping", zap.String("name", c.Name))
		if err := eng.StopContainer(ctx, c.ID, timeout); err != nil {
			return st, errors.Join(err, st.start(ctx, eng, log))
		}
		st.containers = append(st.containers, c)
	}
	return st, nil
}

// start starts what was stopped, in reverse order, also after ctx ended (within cleanupTimeout).
func (s *stopped) start(ctx context.Context, eng Engine, log *zap.Logger) error {
	if s == nil || len(s.containers) == 0 {
		return nil
	}
	ctx, cancel := cleanupContext(ctx)
	defer cancel()
	var errs []error
	for i := len(s.containers) - 1; i >= 0; i-- {
		c := s.containers[i]
		log.Info("starting again", zap.String("name", c.Name))
		if err := eng.StartContainer(ctx, c.ID); err != nil {
			errs = append(errs, err)
		}
	}
	s.containers = nil
	return errors.Join(errs...)
}

// appContainers finds the running containers of the named applications of the server.
func appContainers(list []dockerx.Container, prefix, server string, apps []string) []dockerx.Container {
	var out []dockerx.Container
	for _, app := range apps {
		name := config.ContainerName(prefix, config.KindApp, app)
		for _, c := range list {
			if c.Name == name && c.Running() && labels.OnServer(c.Labels, prefix, server) {
				out = append(out, c)
			}
		}
	}
	return out
}
