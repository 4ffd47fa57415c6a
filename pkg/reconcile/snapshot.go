package reconcile

import (
	"context"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/bee2d/bee2d/pkg/engine"
	"github.com/bee2d/bee2d/pkg/labels"
)

// Snapshot is the live state of one server as the planner sees it.
type Snapshot struct {
	// Containers, running or not: one list call. In the cheap snapshot only those labelled with bee2d's
	// owner and the settings' prefix, which are all a pass needs when nothing is missing; in the complete
	// one every container, so that a name taken by a container bee2d did not make is seen before a create.
	Containers []engine.Container
	// Complete is set when networks, volumes, images and all containers were listed. They are only needed
	// when something is to be created, so a pass where nothing changed costs a single list call.
	Complete bool
	Networks []engine.Network
	Volumes  []engine.Volume
	Images   []engine.Image
}

// Observer lists live state; *dockerx.Client is one.
type Observer interface {
	ListContainers(ctx context.Context) ([]engine.Container, error)
	ListContainersLabelled(ctx context.Context, labels map[string]string) ([]engine.Container, error)
	ListNetworks(ctx context.Context) ([]engine.Network, error)
	ListVolumes(ctx context.Context) ([]engine.Volume, error)
	ListImages(ctx context.Context) ([]engine.Image, error)
}

// ObserveContainers takes the cheap snapshot: the containers of prefix only. Other containers on the host,
// however many, add nothing to its cost.
func ObserveContainers(ctx context.Context, o Observer, prefix string) (*Snapshot, error) {
	cs, err := o.ListContainersLabelled(ctx, map[string]string{labels.Owner: labels.Bee2d, labels.Prefix: prefix})
	if err != nil {
		return nil, err
	}
	return &Snapshot{Containers: cs}, nil
}

// Complete lists networks, volumes and images in parallel, and all containers again so that all four lists
// are taken at about the same moment. With prereq, its networks, volumes and images are taken instead of
// listing them.
func (s *Snapshot) complete(ctx context.Context, o Observer, prereq *Snapshot) error {
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) { s.Containers, err = o.ListContainers(ctx); return })
	if prereq != nil {
		s.Networks, s.Volumes, s.Images = prereq.Networks, prereq.Volumes, prereq.Images
	} else {
		g.Go(func() (err error) { s.Networks, err = o.ListNetworks(ctx); return })
		g.Go(func() (err error) { s.Volumes, err = o.ListVolumes(ctx); return })
		g.Go(func() (err error) { s.Images, err = o.ListImages(ctx); return })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	s.Complete = true
	return nil
}

func (s *Snapshot) hasNetwork(name string) bool {
	for _, n := range s.Networks {
		if n.Name == name {
			return true
		}
	}
	return false
}

func (s *Snapshot) hasVolume(name string) bool {
	for _, v := range s.Volumes {
		if v.Name == name {
			return true
		}
	}
	return false
}

func (s *Snapshot) hasImage(ref string) bool {
	ref = withTag(ref)
	for _, img := range s.Images {
		for _, t := range img.Tags {
			if t == ref || t == "docker.io/library/"+ref || t == "docker.io/"+ref {
				return true
			}
		}
	}
	return false
}

// withTag adds Docker's implicit ":latest" to a reference without a tag or digest.
func withTag(ref string) string {
	if strings.Contains(ref, "@") {
		return ref
	}
	last := ref[strings.LastIndex(ref, "/")+1:]
	if !strings.Contains(last, ":") {
		return ref + ":latest"
	}
	return ref
}
