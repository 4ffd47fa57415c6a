package reconcile

import (
	"cmp"
	"fmt"
	"maps"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/bee2d/bee2d/pkg/config"
	"github.com/bee2d/bee2d/pkg/engine"
	"github.com/bee2d/bee2d/pkg/labels"
)

// Desired is what one server should run according to the settings.
type Desired struct {
	Server  string
	Prefix  string
	Network string
	// Networks are the server's networks: the default one (Network) first, then the named ones in file order.
	Networks []engine.NetworkSpec
	// Containers are the applications in start order: everything a container links to comes before it;
	// otherwise file order.
	Containers []*Container
	// Jobs in file order, the order they run in.
	Jobs []*Container
}

// Container is one desired container with where its image comes from.
type Container struct {
	// Service is the application or job name; Kind tells which.
	Service string
	Kind    config.Kind
	engine.ContainerSpec
	Source ImageSource
	// SourceErr is set when the image source could not be resolved (a git remote that does not answer):
	// this container is left as it is, and the rest of the server converges.
	SourceErr error
	// DependsOn names the containers (Docker names) this one links to; they start first.
	DependsOn []string
	// Volumes are the named volumes its binds use; WritesVolumes those it mounts read-write.
	Volumes       []string
	WritesVolumes []string
	Digest        Digest
	Hash          string
	// StartFirst is set when the settings ask that a new version start beside the old one (deploy:
	// start-first); the planner decides whether it can.
	StartFirst bool
	// RestartUnhealthy is set when the daemon restarts the container once it turns unhealthy after being
	// healthy (healthcheck.on_unhealthy: restart).
	RestartUnhealthy bool
}

// ImageSource says how to get a container's image onto the server.
type ImageSource struct {
	// Build is set for build_dir and git: the directory on this machine that is the build context.
	Build *Build
	// Pull is set for image: the reference is pulled when it is missing on the server.
	Pull bool
}

// Build is an image built on the server from a directory on the admin box: a build_dir, or a git
// repository cloned at Commit.
type Build struct {
	Dir string
	// Display is the source as plans show it: dockerfiles/Static, or a git URL without credentials.
	Display    string
	Dockerfile string
	// Git is set when the context comes from a clone; Dir is then relative to the clone.
	Git *GitSource
	// Args are the build arguments (build_args).
	Args map[string]string
}

// GitSource is a repository at a commit.
type GitSource struct {
	URL, Branch, Commit string
}

// DigestFunc returns the content digest of a build directory.
type DigestFunc func(dir string) (string, error)

// HeadFunc returns the commit a git branch points to ("" branch: the remote's HEAD).
type HeadFunc func(url, branch string) (string, error)

// Sources resolve image sources for DesireFrom: build directories by content, git branches by commit. The
// planner does no I/O of its own: callers pass dockerx.ContextDigest and gitx.Heads, tests fakes. Each is
// required when the server has a service of its kind (build_dir, git).
type Sources struct {
	Digest DigestFunc
	Head   HeadFunc
}

// DesireFrom computes the desired state of one server. The sources are its only I/O.
func DesireFrom(s *config.Settings, server string, src Sources) (*Desired, error) {
	if s.Server(server) == nil {
		return nil, fmt.Errorf("no server %q in %s", server, s.File)
	}
	d := &Desired{
		Server:  server,
		Prefix:  s.Prefix(server),
		Network: config.NetworkName(s.Prefix(server)),
	}
	nets, err := desiredNetworks(s, server, d.Prefix)
	if err != nil {
		return nil, err
	}
	d.Networks = nets
	byName := map[string]*Container{}
	var inFileOrder []*Container
	for _, svc := range s.ServicesOn(server, config.KindApp) {
		c, err := desireService(s, svc, src)
		if err != nil {
			return nil, err
		}
		byName[svc.Name] = c
		inFileOrder = append(inFileOrder, c)
	}
	ordered, err := startOrder(inFileOrder, byName, s, server)
	if err != nil {
		return nil, err
	}
	d.Containers = ordered
	for _, svc := range s.ServicesOn(server, config.KindJob) {
		c, err := desireService(s, svc, src)
		if err != nil {
			return nil, err
		}
		d.Jobs = append(d.Jobs, c)
	}
	stampNetworks(d)
	return d, nil
}

func desireService(s *config.Settings, svc *config.Service, src Sources) (*Container, error) {
	prefix := s.Prefix(svc.Server)
	kind := svc.Kind
	primary, more := networkNames(prefix, svc.Networks)
	c := &Container{
		Service: svc.Name,
		Kind:    kind,
		ContainerSpec: engine.ContainerSpec{
			Name:          config.ContainerName(prefix, kind, svc.Name),
			Env:           config.RenderEnv(s, svc),
			Cmd:           svc.Cmd,
			Entrypoint:    svc.Entrypoint,
			User:          svc.User,
			WorkingDir:    svc.WorkingDir,
			Hostname:      svc.Hostname,
			Binds:         svc.Volumes,
			Ports:         portSpecs(svc.Ports),
			RestartPolicy: cmp.Or(svc.Restart, "unless-stopped"),
			Network:       primary,
			Aliases:       []string{svc.Name},
			IPv4Address:   svc.StaticIPv4,
			IPv6Address:   svc.StaticIPv6,
			MoreNetworks:  more,
			ExtraHosts:    svc.ExtraHosts,
			CapAdd:        svc.CapAdd,
			Memory:        svc.Memory,
			NanoCPUs:      svc.NanoCPUs,
			PidsLimit:     svc.PidsLimit,
			StopSignal:    svc.StopSignal,
			StopTimeout:   cmp.Or(svc.StopGrace, config.StopTimeout),
			ReadOnly:      svc.ReadOnly,
			Tmpfs:         svc.Tmpfs,
			Sysctls:       svc.Sysctls,
			Devices:       svc.Devices,
		},
	}
	for _, u := range svc.Ulimits {
		c.Ulimits = append(c.Ulimits, engine.Ulimit{Name: u.Name, Soft: u.Soft, Hard: u.Hard})
	}
	if svc.Log != nil {
		c.LogDriver, c.LogOptions = svc.Log.Driver, svc.Log.Options
	}
	c.Health = healthSpec(svc.Health)
	c.StartFirst = svc.Deploy == config.StartFirst
	c.RestartUnhealthy = svc.Health != nil && svc.Health.OnUnhealthy == config.UnhealthyRestart
	// Job images get their own repository, so a job and an application of the same name never share tags.
	repo := svc.Name
	if kind == config.KindJob {
		c.RestartPolicy = cmp.Or(svc.Restart, "no")
		repo = "job-" + svc.Name
	}
	// The user's labels go under bee2d's, which are set after them and always win; none of the user's may
	// sit in bee2d's namespace, where it could forge ownership or a spec hash.
	c.Labels = map[string]string{}
	for k, v := range svc.Labels {
		if !ownLabel(k) {
			c.Labels[k] = v
		}
	}
	maps.Copy(c.Labels, labels.ForServer(prefix, svc.Server))
	switch {
	case svc.BuildDir != "":
		dir := filepath.Join(s.Docker.Dockerfiles, svc.BuildDir)
		if src.Digest == nil {
			return nil, fmt.Errorf("%s %s: build_dir %s: no Digest to hash it with", kindName(kind), svc.Name, svc.BuildDir)
		}
		sum, err := src.Digest(dir)
		if err != nil {
			return nil, fmt.Errorf("%s %s: build_dir %s: %w", kindName(kind), svc.Name, svc.BuildDir, err)
		}
		c.Image = ImageTag(prefix, repo, withBuildArgs(sum, svc.BuildArgs))
		c.Source.Build = &Build{Dir: dir, Display: filepath.Join("dockerfiles", svc.BuildDir) + argsNote(svc.BuildArgs), Args: svc.BuildArgs}
	case svc.Git != "":
		if src.Head == nil {
			return nil, fmt.Errorf("%s %s: git %s: no Head to resolve its branch with", kindName(kind), svc.Name, config.RedactURL(svc.Git))
		}
		commit, err := src.Head(svc.Git, svc.Branch)
		if err != nil {
			c.SourceErr = err
			commit = "unknown"
		}
		c.Image = ImageTag(prefix, repo, withBuildArgs(commit, svc.BuildArgs))
		c.Source.Build = &Build{Dir: svc.GitDir, Dockerfile: svc.Dockerfile, Display: config.RedactURL(svc.Git) + argsNote(svc.BuildArgs),
			Git: &GitSource{URL: svc.Git, Branch: svc.Branch, Commit: commit}, Args: svc.BuildArgs}
		c.Labels[labels.Commit] = commit
	default:
		c.Image = svc.Image
		c.Source.Pull = true
	}
	for _, b := range svc.Volumes {
		if v, ok := namedVolume(b); ok {
			c.Volumes = append(c.Volumes, v)
			if !readOnlyBind(b) {
				c.WritesVolumes = append(c.WritesVolumes, v)
			}
		}
	}
	for _, l := range svc.Link {
		c.DependsOn = append(c.DependsOn, config.ContainerName(prefix, config.KindApp, l))
	}
	c.Labels[labels.Kind] = string(kind)
	c.Labels[labels.Name] = svc.Name
	secret := config.SecretKeys(svc)
	if len(secret) > 0 && len(s.HashKey()) == 0 {
		// Settings made without Load: a plain hash would put a guessable digest of the secret in a label.
		return nil, fmt.Errorf("%s %s: secret env values but no hash key", kindName(kind), svc.Name)
	}
	c.Digest = digestOf(&c.ContainerSpec, secret, s.HashKey())
	c.Hash = c.Digest.hash()
	c.Labels[labels.SpecHash] = c.Hash
	c.Labels[labels.HashScheme] = strconv.Itoa(schemeOf(secret))
	c.Labels[labels.SpecDigest] = c.Digest.label()
	return c, nil
}

func kindName(k config.Kind) string {
	if k == config.KindJob {
		return "job"
	}
	return "application"
}

// readOnlyBind tells whether a bind string's options include ro.
func readOnlyBind(bind string) bool {
	parts := strings.Split(bind, ":")
	if len(parts) < 3 {
		return false
	}
	for _, o := range strings.Split(parts[len(parts)-1], ",") {
		if o == "ro" {
			return true
		}
	}
	return false
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
func startOrder(list []*Container, byService map[string]*Container, s *config.Settings, server string) ([]*Container, error) {
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
		for _, l := range s.App(server, c.Service).Link {
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

// networkNames resolves a service's networks key to Docker names: the first is the primary network, the
// rest are connected before the container starts. "network" is the server's default network, any other
// name N the network <prefix>-N; no networks means the default network alone.
func networkNames(prefix string, names []string) (primary string, more []string) {
	if len(names) == 0 {
		return config.NetworkName(prefix), nil
	}
	for _, n := range names[1:] {
		more = append(more, networkName(prefix, n))
	}
	return networkName(prefix, names[0]), more
}

func networkName(prefix, name string) string {
	if name == "network" {
		return config.NetworkName(prefix)
	}
	return prefix + "-" + name
}

// ownLabelPrefix starts every label bee2d sets (pkg/labels).
const ownLabelPrefix = "io.bee2d."

// ownLabel tells whether a label key is in bee2d's namespace.
func ownLabel(key string) bool {
	return strings.HasPrefix(key, ownLabelPrefix)
}

// healthSpec turns the settings' health check into the engine's form: a list is run as it is (CMD), a string
// by the container's shell (CMD-SHELL).
func healthSpec(h *config.Healthcheck) *engine.HealthSpec {
	switch {
	case h == nil:
		return nil
	case h.Disable:
		return &engine.HealthSpec{Test: []string{"NONE"}}
	}
	spec := &engine.HealthSpec{Interval: h.Interval, Timeout: h.Timeout, StartPeriod: h.StartPeriod, Retries: h.Retries}
	switch {
	case len(h.Test) == 0:
	case h.Shell:
		spec.Test = append([]string{"CMD-SHELL"}, h.Test...)
	default:
		spec.Test = append([]string{"CMD"}, h.Test...)
	}
	return spec
}

// portSpecs publishes each port on each of its host addresses, or on every address when it names none.
func portSpecs(ps []config.Port) []engine.PortSpec {
	var out []engine.PortSpec
	for _, p := range ps {
		spec := engine.PortSpec{HostPort: p.HostPort, ContainerPort: p.ContainerPort, Proto: cmp.Or(p.Proto, "tcp")}
		if len(p.HostIPs) == 0 {
			out = append(out, spec)
			continue
		}
		for _, ip := range p.HostIPs {
			spec.HostIP = ip
			out = append(out, spec)
		}
	}
	return out
}
