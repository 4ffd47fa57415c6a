package reconcile

import (
	"context"
	"strings"
	"time"

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
	// NetworksListed is set when the networks were listed with the containers of the cheap snapshot, or
	// afresh for a complete one: the caller could not vouch that they are as the settings say
	// (Hints.NetworksSeen).
	NetworksListed bool
}

// knowsNetworks tells whether the snapshot has the networks.
func (s *Snapshot) knowsNetworks() bool {
	return s.Complete || s.NetworksListed
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
	s := &Snapshot{Containers: cs}
	s.noteFailures(ctx, o)
	return s, nil
}

// FinishInspector tells when a container stopped; *dockerx.Client is one. An observer that is one has the
// failed versions of applications inspected, so that a plan says when they failed.
type FinishInspector interface {
	ContainerFinished(ctx context.Context, id string) (time.Time, error)
}

// noteFailures fills in when the failed versions kept for their logs stopped: one inspect each, and there
// is at most one per application. A failed inspect only leaves the time out of the plan.
func (s *Snapshot) noteFailures(ctx context.Context, o Observer) {
	fi, ok := o.(FinishInspector)
	if !ok {
		return
	}
	for i := range s.Containers {
		c := &s.Containers[i]
		if c.Running() || c.Labels[labels.Owner] != labels.Bee2d || !strings.Contains(c.Name, ".failed-") {
			continue
		}
		if t, err := fi.ContainerFinished(ctx, c.ID); err == nil {
			c.Finished = t
		}
	}
}

// observeCheap takes the cheap snapshot, with the networks listed beside the containers when networks is
// set.
func observeCheap(ctx context.Context, o Observer, prefix string, networks bool) (*Snapshot, error) {
	if !networks {
		return ObserveContainers(ctx, o, prefix)
	}
	s := &Snapshot{NetworksListed: true}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) {
		s.Containers, err = o.ListContainersLabelled(gctx, map[string]string{labels.Owner: labels.Bee2d, labels.Prefix: prefix})
		return
	})
	g.Go(func() (err error) { s.Networks, err = o.ListNetworks(gctx); return })
	if err := g.Wait(); err != nil {
		return nil, err
	}
	s.noteFailures(ctx, o)
	return s, nil
}

// Complete lists networks, volumes and images in parallel, and all containers again so that all four lists
// are taken at about the same moment. With prereq, its volumes and images are taken instead of listing
// them, and its networks too unless freshNetworks; networks the cheap snapshot of this pass listed are
// kept.
func (s *Snapshot) complete(ctx context.Context, o Observer, prereq *Snapshot, freshNetworks bool) error {
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) { s.Containers, err = o.ListContainers(gctx); return })
	switch {
	case s.NetworksListed:
	case prereq != nil && !freshNetworks:
		s.Networks = prereq.Networks
	default:
		s.NetworksListed = true
		g.Go(func() (err error) { s.Networks, err = o.ListNetworks(gctx); return })
	}
	if prereq != nil {
		s.Volumes, s.Images = prereq.Volumes, prereq.Images
	} else {
		g.Go(func() (err error) { s.Volumes, err = o.ListVolumes(gctx); return })
		g.Go(func() (err error) { s.Images, err = o.ListImages(gctx); return })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	s.noteFailures(ctx, o)
	s.Complete = true
	return nil
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
