package reconcile

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/bee2d/bee2d/pkg/config"
	"github.com/bee2d/bee2d/pkg/dockerx"
)

// Desired is what one server should run according to the settings.
type Desired struct {
	Server  string
	Prefix  string
	Network string
	// Containers in start order: everything a container links to comes before it; otherwise file order.
	Containers []*Container
}

// Container is one desired container with where its image comes from.
type Container struct {
	// Service is the application or job name; Kind tells which.
	Service string
	Kind    config.Kind
	dockerx.ContainerSpec
	Source ImageSource
	// DependsOn names the containers (Docker names) this one links to; they start first.
	DependsOn []string
	// Volumes are the named volumes its binds use.
	Volumes []string
	Digest  Digest
	Hash    string
}

// ImageSource says how to get a container's image onto the server.
type ImageSource struct {
	// Build is set for build_dir: the directory on this machine that is the build context.
	Build *Build
	// Pull is set for image: the reference is pulled when it is missing on the server.
	Pull bool
}

// Build is an image built from a directory on the admin box.
type Build struct {
	Dir string
	// Display is the directory as the settings name it, for plans.
	Display    string
	Dockerfile string
}

// DigestFunc returns the content digest of a build directory.
type DigestFunc func(dir string) (string, error)

// Desire computes the desired state of one server. digest hashes build directories (dockerx.ContextDigest
// in production); it is the only I/O here.
func Desire(s *config.Settings, server string, digest DigestFunc) (*Desired, error) {
	if s.Server(server) == nil {
		return nil, fmt.Errorf("no server %q in %s", server, s.File)
	}
	d := &Desired{
		Server:  server,
		Prefix:  s.Docker.Prefix,
		Network: config.NetworkName(s.Docker.Prefix),
	}
	byName := map[string]*Container{}
	var inFileOrder []*Container
	for _, svc := range s.ServicesOn(server, config.KindApp) {
		c, err := desireApp(s, svc, digest)
		if err != nil {
			return nil, err
		}
		byName[svc.Name] = c
		inFileOrder = append(inFileOrder, c)
	}
	ordered, err := startOrder(inFileOrder, byName, s)
	if err != nil {
		return nil, err
	}
	d.Containers = ordered
	return d, nil
}

func desireApp(s *config.Settings, svc *config.Service, digest DigestFunc) (*Container, error) {
	prefix := s.Docker.Prefix
	name := config.ContainerName(prefix, config.KindApp, svc.Name)
	c := &Container{
		Service: svc.Name,
		Kind:    config.KindApp,
		ContainerSpec: dockerx.ContainerSpec{
			Name:          name,
			Env:           config.RenderEnv(s, svc),
			Binds:         svc.Volumes,
			Ports:         svc.Ports,
			RestartPolicy: "unless-stopped",
			Network:       config.NetworkName(prefix),
			Aliases:       []string{svc.Name},
		},
	}
	switch {
	case svc.BuildDir != "":
		dir := filepath.Join(s.Docker.Dockerfiles, svc.BuildDir)
		sum, err := digest(dir)
		if err != nil {
			return nil, fmt.Errorf("application %s: build_dir %s: %w", svc.Name, svc.BuildDir, err)
		}
		c.Image = ImageTag(prefix, svc.Name, sum)
		c.Source.Build = &Build{Dir: dir, Display: filepath.Join("dockerfiles", svc.BuildDir)}
	case svc.Git != "":
		return nil, fmt.Errorf("application %s: images from git are not supported yet; use build_dir or image", svc.Name)
	default:
		c.Image = svc.Image
		c.Source.Pull = true
	}
	for _, b := range svc.Volumes {
		if v, ok := namedVolume(b); ok {
			c.Volumes = append(c.Volumes, v)
		}
	}
	for _, l := range svc.Link {
		c.DependsOn = append(c.DependsOn, config.ContainerName(prefix, config.KindApp, l))
	}
	c.Labels = ownerLabels(prefix, svc.Server)
	c.Labels[LabelKind] = string(config.KindApp)
	c.Labels[LabelName] = svc.Name
	c.Digest = digestOf(&c.ContainerSpec)
	c.Hash = c.Digest.hash()
	c.Labels[LabelSpecHash] = c.Hash
	c.Labels[LabelHashScheme] = strconv.Itoa(HashScheme)
	c.Labels[LabelSpecDigest] = c.Digest.label()
	return c, nil
}

// ImageTag names an image built from a directory: <prefix>/<service>:<first 12 of the content digest>.
// Docker repository names are lower case.
func ImageTag(prefix, service, digest string) string {
	if len(digest) > 12 {
		digest = digest[:12]
	}
	return strings.ToLower(prefix+"/"+service) + ":" + digest
}

var volumeName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// namedVolume returns the volume of a bind string whose source is a named volume.
func namedVolume(bind string) (string, bool) {
	src, _, ok := strings.Cut(bind, ":")
	if !ok || !volumeName.MatchString(src) {
		return "", false
	}
	return src, true
}

// startOrder sorts containers so that each comes after everything it links to, keeping file order
// otherwise. The settings were validated, so a cycle here is a bug, reported as an error.
func startOrder(list []*Container, byService map[string]*Container, s *config.Settings) ([]*Container, error) {
	var out []*Container
	state := map[*Container]int{} // 0 new, 1 visiting, 2 done
	var visit func(c *Container) error
	visit = func(c *Container) error {
		switch state[c] {
		case 1:
			return fmt.Errorf("application %s: link cycle", c.Service)
		case 2:
			return nil
		}
		state[c] = 1
		for _, l := range s.Application(c.Service).Link {
			if dep, ok := byService[l]; ok {
				if err := visit(dep); err != nil {
					return err
				}
			}
		}
		state[c] = 2
		out = append(out, c)
		return nil
	}
	for _, c := range list {
		if err := visit(c); err != nil {
			return nil, err
		}
	}
	return out, nil
}
