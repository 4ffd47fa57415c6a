package dockerx

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"

	"github.com/bee2d/bee2d/pkg/engine"
)

// ListContainers returns every container on the host, running or not, from one list call, so that a snapshot
// is consistent and cheap. Networks, ports and mounts are sorted, so equal containers compare equal.
func (c *Client) ListContainers(ctx context.Context) ([]Container, error) {
	return c.listContainers(ctx, container.ListOptions{All: true})
}

// ListContainersLabelled returns the containers, running or not, that carry every one of labels, from one
// list call. The engine filters before it builds each container's summary, so the call costs what the
// matching containers cost, not what the whole host holds.
func (c *Client) ListContainersLabelled(ctx context.Context, labels map[string]string) ([]Container, error) {
	f := filters.NewArgs()
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		f.Add("label", k+"="+labels[k])
	}
	return c.listContainers(ctx, container.ListOptions{All: true, Filters: f})
}

func (c *Client) listContainers(ctx context.Context, opts container.ListOptions) ([]Container, error) {
	ctx, cancel := short(ctx)
	defer cancel()
	list, err := c.api.ContainerList(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	out := make([]Container, 0, len(list))
	for _, s := range list {
		out = append(out, containerFromSummary(s))
	}
	return out, nil
}

func containerFromSummary(s container.Summary) Container {
	ctr := Container{
		ID:      s.ID,
		Name:    primaryName(s.Names),
		Image:   s.Image,
		ImageID: s.ImageID,
		State:   string(s.State),
		Status:  s.Status,
		Labels:  s.Labels,
		Created: time.Unix(s.Created, 0),
	}
	if ctr.State == "running" {
		ctr.Health = engine.HealthFromStatus(s.Status)
	}
	if s.NetworkSettings != nil {
		for name := range s.NetworkSettings.Networks {
			ctr.Networks = append(ctr.Networks, name)
		}
		slices.Sort(ctr.Networks)
	}
	for _, p := range s.Ports {
		if p.PublicPort == 0 {
			// Exposed by the image but not published: nothing reaches it from outside.
			continue
		}
		ctr.Ports = append(ctr.Ports, Port{
			HostIP:        p.IP,
			HostPort:      int(p.PublicPort),
			ContainerPort: int(p.PrivatePort),
			Proto:         p.Type,
		})
	}
	slices.SortFunc(ctr.Ports, func(a, b Port) int {
		return cmp.Or(
			cmp.Compare(a.ContainerPort, b.ContainerPort),
			cmp.Compare(a.Proto, b.Proto),
			cmp.Compare(a.HostIP, b.HostIP),
			cmp.Compare(a.HostPort, b.HostPort),
		)
	})
	for _, m := range s.Mounts {
		ctr.Mounts = append(ctr.Mounts, Mount{
			Type:        string(m.Type),
			Name:        m.Name,
			Source:      m.Source,
			Destination: m.Destination,
			RW:          m.RW,
		})
	}
	slices.SortFunc(ctr.Mounts, func(a, b Mount) int { return cmp.Compare(a.Destination, b.Destination) })
	return ctr
}

// primaryName picks the container's own name. Legacy links make the engine also list names such as
// "/haproxy/nginx" (the container as seen by another), which are not its name.
func primaryName(names []string) string {
	for _, n := range names {
		n = strings.TrimPrefix(n, "/")
		if !strings.Contains(n, "/") {
			return n
		}
	}
	if len(names) > 0 {
		return strings.TrimPrefix(names[0], "/")
	}
	return ""
}

// ListNetworks returns every network on the host, built-in ones (bridge, host, none) included, with their
// settings but not the containers attached (see InspectNetwork).
func (c *Client) ListNetworks(ctx context.Context) ([]Network, error) {
	ctx, cancel := short(ctx)
	defer cancel()
	list, err := c.api.NetworkList(ctx, network.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list networks: %w", err)
	}
	out := make([]Network, 0, len(list))
	for _, n := range list {
		out = append(out, networkFrom(n))
	}
	slices.SortFunc(out, func(a, b Network) int { return cmp.Compare(a.Name, b.Name) })
	return out, nil
}

// ListVolumes returns every named volume on the host.
func (c *Client) ListVolumes(ctx context.Context) ([]Volume, error) {
	ctx, cancel := short(ctx)
	defer cancel()
	resp, err := c.api.VolumeList(ctx, volume.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list volumes: %w", err)
	}
	out := make([]Volume, 0, len(resp.Volumes))
	for _, v := range resp.Volumes {
		if v == nil {
			continue
		}
		out = append(out, Volume{Name: v.Name, Driver: v.Driver, Labels: v.Labels})
	}
	slices.SortFunc(out, func(a, b Volume) int { return cmp.Compare(a.Name, b.Name) })
	return out, nil
}

// ListImages returns the local images with their tags; untagged images have no Tags.
func (c *Client) ListImages(ctx context.Context) ([]Image, error) {
	ctx, cancel := short(ctx)
	defer cancel()
	list, err := c.api.ImageList(ctx, image.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	out := make([]Image, 0, len(list))
	for _, s := range list {
		img := Image{ID: s.ID, Labels: s.Labels}
		for _, t := range s.RepoTags {
			// Older engines spell "no tag" as a tag.
			if t != "<none>:<none>" {
				img.Tags = append(img.Tags, t)
			}
		}
		slices.Sort(img.Tags)
		out = append(out, img)
	}
	return out, nil
}

// ImageExists tells whether ref (a tag or an id) names a local image.
func (c *Client) ImageExists(ctx context.Context, ref string) (bool, error) {
	ctx, cancel := short(ctx)
	defer cancel()
	if _, err := c.api.ImageInspect(ctx, ref); err != nil {
		if IsNotFound(err) {
			return false, nil
		}
		return false, fmt.Errorf("inspect image %s: %w", ref, err)
	}
	return true, nil
}
