package config

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// validate runs the checks that need the whole file: references between sections, ports per server and the
// build directories on disk.
func (d *decoder) validate(s *Settings) {
	d.layout(s)
	dockerfilesOK := d.resolveDockerfiles(s)

	var serverNames []string
	for _, srv := range s.Servers {
		serverNames = append(serverNames, srv.Name)
	}
	// findApp reports a name that is no application of server; $name, link and domains: all always mean
	// applications, also inside jobs (Bee2 read $name inside a job as a job: a bug). An application of
	// another server is accepted where anywhere is true (a 2017-layout $name, whose prefix is global).
	findApp := func(server, name string, n *yaml.Node, path, hint string, anywhere bool) *Service {
		if a := s.App(server, name); a != nil {
			return a
		}
		// Candidates: the server's applications, and those whose own server is unknown (a typo there
		// should not hide the name). Without a known server, every application.
		known := s.Server(server) != nil
		var names []string
		var elsewhere *Service
		for _, a := range s.Applications {
			if a.Server == server || !known || s.Server(a.Server) == nil {
				names = append(names, a.Name)
			}
			if a.Server != server && a.Name == name && elsewhere == nil {
				elsewhere = a
			}
		}
		if !known && elsewhere != nil {
			return elsewhere
		}
		if elsewhere != nil && anywhere {
			return elsewhere
		}
		switch sg := suggest(name, names); {
		case sg != "":
			hint = didYouMean(name, names)
		case s.JobOn(server, name) != nil:
			hint = fmt.Sprintf(" (%q is a job; only applications can be named here)", name)
		case elsewhere != nil:
			d.errorf(n, path, "application %q runs on server %q, not %q", name, elsewhere.Server, server)
			return nil
		}
		if !known {
			d.errorf(n, path, "no application %q%s", name, hint)
			return nil
		}
		d.errorf(n, path, "no application %q on server %s%s", name, server, hint)
		return nil
	}

	for _, m := range d.svcs {
		svc := m.svc
		switch {
		case m.section != "":
		case m.server == nil:
			d.errorf(m.key, m.path, "server is required")
		case s.Server(svc.Server) == nil:
			d.errorf(m.server, joinPath(m.path, "server"), "no server %q%s", svc.Server, didYouMean(svc.Server, serverNames))
		}
		if !m.sourceGiven {
			d.errorf(m.key, m.path, "no image source: set build_dir, git or image")
		}
		if !m.gitGiven {
			for _, p := range m.gitOpts {
				d.errorf(p.KNode, joinPath(m.path, p.Key), "%s applies only with git", p.Key)
			}
		}
		if m.buildArgs != nil && m.svc.BuildDir == "" && m.svc.Git == "" && m.svc.Image != "" {
			d.errorf(m.buildArgs, joinPath(m.path, "build_args"), "build_args applies only with build_dir or git")
		}
		prefix := s.Prefix(svc.Server)
		if (svc.BuildDir != "" || svc.Git != "") && ValidName(svc.Name) && ValidName(prefix) {
			repo := svc.Name
			if svc.Kind == KindJob {
				repo = "job-" + svc.Name
			}
			if !ImageRepoOK(prefix, repo) {
				// Caught here rather than by the engine in the middle of an apply.
				d.errorf(m.key, m.path, "%q cannot name the image bee2d builds for it (%s/%s): Docker takes letters and digits "+
					"separated by one \".\", \"_\" or \"__\", or dashes, in the prefix and the name", svc.Name, strings.ToLower(prefix), strings.ToLower(repo))
			}
		}
		d.checkReloads(m)
		if m.buildDir != nil && dockerfilesOK {
			d.checkBuildDir(s, m)
		}
		for _, l := range m.links {
			findApp(svc.Server, l.val, l.node, l.path, "", false)
		}
		for _, r := range m.refs {
			findApp(svc.Server, r.name, r.node, r.path, fmt.Sprintf(" (write %q for a literal %q)", "$$"+r.name, "$"+r.name), m.section == "")
		}
		d.checkContainer(s, m)
	}
	d.checkLinkCycles(s)
	d.checkPorts()
	d.checkAddresses(s)
	for _, b := range d.backupMeta {
		d.checkBackup(s, b, serverNames, findApp)
	}
	d.checkSync(s)
	d.checkRootTLSDefaults(s)
	// Before the database passwords, which may be made in the secrets directory.
	d.secretsEach, d.secretsDirOK = d.checkRootSecretsDir(s)
	d.loadDatabases(s)
	d.loadSecrets(s)
	d.checkKeyFiles(s)
	s.Warnings = append(s.Warnings, d.warnings...)
}

// checkBackup checks one docker.backup.<server> against the rest of the file.
func (d *decoder) checkBackup(s *Settings, b backupMeta, serverNames []string, findApp func(string, string, *yaml.Node, string, string, bool) *Service) {
	known := s.Server(b.backup.Server) != nil
	if !known {
		d.errorf(b.key, b.path, "no server %q%s", b.backup.Server, didYouMean(b.backup.Server, serverNames))
	}
	if len(b.backup.Volumes) == 0 {
		d.errorf(b.key, b.path, "volumes lists nothing to back up")
	}
	if b.schedule != nil {
		if _, err := ParseSchedule(b.backup.Schedule); err != nil {
			d.errorf(b.schedule, joinPath(b.path, "schedule"),
				"schedule %q: %v (want five cron fields \"minute hour day month weekday\", or @hourly, @daily, @weekly, @monthly, @every 6h)",
				b.backup.Schedule, err)
		}
	}
	seen := map[string]bool{}
	for _, item := range b.stop {
		if seen[item.val] {
			d.errorf(item.node, item.path, "application %q is listed twice", item.val)
			continue
		}
		seen[item.val] = true
		if known {
			findApp(b.backup.Server, item.val, item.node, item.path, "", false)
		}
	}
}

// resolveDockerfiles sets Docker.Dockerfiles: docker.dockerfiles (relative to the settings file), else
// dockerfiles/ beside the settings file, else ./dockerfiles in the working directory, where Bee2 found it when
// run from its repository. It tells whether the directory exists.
func (d *decoder) resolveDockerfiles(s *Settings) bool {
	if d.dockerfilesNode != nil {
		p := s.ResolvePath(d.dockerfiles)
		s.Docker.Dockerfiles = filepath.Clean(p)
		if !d.checkRoot(d.dockerfilesNode, "docker.dockerfiles", "dockerfiles", d.dockerfiles, p) {
			return false
		}
		if !isDir(p) {
			d.errorf(d.dockerfilesNode, "docker.dockerfiles", "no directory %q", d.dockerfiles)
			return false
		}
		return true
	}
	if p := s.ResolvePath("dockerfiles"); isDir(p) {
		s.Docker.Dockerfiles = p
		if problem := d.rootProblem("dockerfiles", p); problem != "" {
			for _, m := range d.svcs {
				if m.buildDir != nil {
					d.errorf(m.buildDir, joinPath(m.path, "build_dir"), "dockerfiles: %s", problem)
				}
			}
			return false
		}
		return true
	}
	if d.opt.Root != "" {
		// The working directory is not part of the checkout.
		s.Docker.Dockerfiles = s.ResolvePath("dockerfiles")
		for _, m := range d.svcs {
			if m.buildDir != nil {
				d.errorf(m.buildDir, joinPath(m.path, "build_dir"),
					"no dockerfiles directory beside the settings file in the repository checkout; set docker.dockerfiles")
			}
		}
		return false
	}
	p, err := filepath.Abs("dockerfiles")
	if err != nil {
		p = "dockerfiles"
	}
	s.Docker.Dockerfiles = p
	if isDir(p) {
		return true
	}
	for _, m := range d.svcs {
		if m.buildDir != nil {
			d.errorf(m.buildDir, joinPath(m.path, "build_dir"),
				"no dockerfiles directory beside the settings file or in the working directory; set docker.dockerfiles")
		}
	}
	return false
}

// checkBuildDir makes sure build_dir is a directory inside the dockerfiles directory, also after symbolic links:
// its whole content is sent to the Docker engine as the build context.
func (d *decoder) checkBuildDir(s *Settings, m *svcMeta) {
	bd, path := m.svc.BuildDir, joinPath(m.path, "build_dir")
	if !filepath.IsLocal(bd) {
		d.errorf(m.buildDir, path, "build_dir %q must be a relative path inside the dockerfiles directory", bd)
		return
	}
	root, err := filepath.EvalSymlinks(s.Docker.Dockerfiles)
	if err != nil {
		d.errorf(m.buildDir, path, "dockerfiles directory: %v", err)
		return
	}
	target, err := filepath.EvalSymlinks(filepath.Join(root, bd))
	if err != nil {
		d.errorf(m.buildDir, path, "no directory %q in %s%s", bd, displayPath(s, s.Docker.Dockerfiles), didYouMean(bd, subdirs(root)))
		return
	}
	if rel, err := filepath.Rel(root, target); err != nil || !filepath.IsLocal(rel) {
		d.errorf(m.buildDir, path, "build_dir %q leads outside the dockerfiles directory", bd)
		return
	}
	if !isDir(target) {
		d.errorf(m.buildDir, path, "build_dir %q is not a directory", bd)
	}
}

// checkLinkCycles reports each link that closes a cycle: the linked applications must start first.
func (d *decoder) checkLinkCycles(s *Settings) {
	// Nodes are server/name: links stay on one server.
	edges := map[string][]strItem{}
	for _, m := range d.svcs {
		if m.svc.Kind != KindApp {
			continue
		}
		for _, l := range m.links {
			if s.App(m.svc.Server, l.val) != nil {
				l.val = m.svc.Server + "/" + l.val
				edges[m.svc.Server+"/"+m.svc.Name] = append(edges[m.svc.Server+"/"+m.svc.Name], l)
			}
		}
	}
	const (
		active = 1
		done   = 2
	)
	state := map[string]int{}
	var stack []string
	var visit func(name string)
	visit = func(name string) {
		state[name] = active
		stack = append(stack, name)
		for _, l := range edges[name] {
			switch state[l.val] {
			case 0:
				visit(l.val)
			case active:
				i := slices.Index(stack, l.val)
				var cycle []string
				for _, name := range append(slices.Clone(stack[i:]), l.val) {
					_, name, _ = strings.Cut(name, "/")
					cycle = append(cycle, shown(name))
				}
				d.errorf(l.node, l.path, "link cycle: %s", strings.Join(cycle, " -> "))
			}
		}
		stack = stack[:len(stack)-1]
		state[name] = done
	}
	for _, a := range s.Applications {
		if state[a.Server+"/"+a.Name] == 0 {
			visit(a.Server + "/" + a.Name)
		}
	}
}

func kindWord(k Kind) string {
	if k == KindJob {
		return "job"
	}
	return "application"
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// subdirs lists the directories in dir, for suggestions.
func subdirs(dir string) []string {
	entries, _ := os.ReadDir(dir)
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	return out
}

// displayPath shows p relative to the settings file when it lies beside it, so messages do not depend on where
// the checkout is.
func displayPath(s *Settings, p string) string {
	if rel, err := filepath.Rel(s.Dir, p); err == nil && filepath.IsLocal(rel) {
		return rel
	}
	return p
}
