// Package config reads a Bee2 settings file into validated, defaulted settings; it knows nothing of Docker.
package config

import (
	"time"

	"go.yaml.in/yaml/v3"
)

// DefaultPrefix is the container name prefix when docker.prefix is not set (Bee2's default).
const DefaultPrefix = "bee2"

// DefaultReadTimeout is Bee2's docker.read_timeout default: long calls such as builds may take this long.
const DefaultReadTimeout = 900 * time.Second

// DefaultPoll is how often the daemon asks a job's git remote for a new commit.
const DefaultPoll = 5 * time.Minute

// StopTimeout is what a container gets to stop (SIGTERM) before it is killed, when bee2d recreates or
// removes it and when a backup stops the applications using a volume.
const StopTimeout = 10 * time.Second

// Settings is one loaded and validated settings file.
type Settings struct {
	// File is the path the settings were read from, as given; Dir is its directory.
	File string
	Dir  string
	// Revision names the version of the settings when their source has versions: the full hash of the git
	// commit they were checked out from; empty for a plain file. The source sets it after loading.
	Revision string

	// Servers in file order.
	Servers []*Server
	Docker  Docker
	// Applications and Jobs in file order.
	Applications []*Service
	Jobs         []*Service

	// Sections Bee2 used for provisioning (provisioner, inventory, openvpn, security), kept as written.
	Extra map[string]*yaml.Node

	// Security is Bee2's security section: with PGPID set, database passwords live in Bee2's pass store.
	Security Security
	// Sync is sync.<server>.push: what `bee2d sync` (Bee2's -s) copies to each server, by server name.
	Sync map[string][]SyncPush
	// SSHKey is provisioner.ssh_key.private as written (the key sync logs in with); StateFile is
	// provisioner.state_file as written, read for the servers' IPv6 subnets.
	SSHKey    string
	StateFile string

	// Inputs are the files read besides the settings file (secrets, env_files, the hash key).
	Inputs []Input
	// Warnings are problems that do not stop the settings from loading, such as a key file readable by others.
	Warnings []Warning
	// HashKeyMade names the hash key file when this load made it (the first load with a secret value).
	HashKeyMade string
	// PasswordsMade names the database password files this load made (each once, on first use).
	PasswordsMade []string
	hashKey       []byte
	// keyDir is Options.KeyDir: where the hash key and made passwords are kept; "" for the secrets directory.
	keyDir string
}

// Server is one Docker host.
type Server struct {
	Name string
	// Docker is the explicit connection, nil when the settings give none.
	Docker *Connection
	DNS    DNS
	// IP is servers.<s>.ip: host addresses by network name; a network of that name binds its published
	// ports to them.
	IP map[string]HostIP
	// IPv6Docker is servers.<s>.ipv6.docker: the suffixes that, appended to the provisioner state file's
	// subnet of this server, give the default network's subnet and the address of ipv6_web containers.
	IPv6Docker IPv6Docker
	// StateIPv6Subnet is servers.<s>.ipv6.subnet of the provisioner's state file, empty when there is none.
	StateIPv6Subnet string
	// Keys Bee2 used for provisioning (plan, os, private_ip, playbook, region, vpn, mail, ...), kept as written.
	Extra map[string]*yaml.Node
	Pos   Pos

	// Section is docker.<s> of Bee2's later layout, nil when the file has none for this server.
	Section *Section
	// Implicit is set for a server that only a docker.<s> section names (no servers.<s> entry): it is reached
	// like a server with no docker key (DOCKER_HOST, else the local socket).
	Implicit bool
}

// HostIP is one servers.<s>.ip.<name> entry.
type HostIP struct {
	IPv4, IPv6 string
}

// IPv6Docker is servers.<s>.ipv6.docker.
type IPv6Docker struct {
	// SuffixNet is appended to the state file's subnet for the default network (e.g. "2:0:0/96").
	SuffixNet string
	// StaticWeb is appended to it for the address of ipv6_web containers.
	StaticWeb string
}

// Section is docker.<server> in Bee2's later layout: what that server runs.
type Section struct {
	// Prefix as written; "" when the section sets none (Settings.Prefix gives the one in force).
	Prefix string
	// Networks are the named networks, in file order.
	Networks []*Network
	// EnvKeysAsWritten keeps plain env keys as written (env_keys: as-written, Bee2's 2021 code) instead of
	// upper-casing them.
	EnvKeysAsWritten bool
	Pos              Pos
}

// Network is docker.<server>.networks.<name>: a user-defined bridge network <prefix>-<name>.
type Network struct {
	// Name is as written; the Docker name is NetworkName(prefix) for the default network, else prefix-name.
	Name string
	// IPv4 and IPv6 are the subnets as written (CIDR, or a bare address as Bee2's specs write them); IPv6 set,
	// or the ipv6 key present, enables IPv6.
	IPv4, IPv6 string
	EnableIPv6 bool
	// Masquerade false turns off IP masquerading (com.docker.network.bridge.enable_ip_masquerade); nil leaves
	// the engine's default (on).
	Masquerade *bool
	// Bridge is the Linux bridge's name; IfPrefix the prefix of the containers' interfaces.
	Bridge, IfPrefix string
	// HostIPv4 and HostIPv6 are servers.<s>.ip.<name>: the host addresses published ports bind to.
	HostIPv4, HostIPv6 string
	Pos                Pos
}

// Security is Bee2's security section.
type Security struct {
	// PGPID is the key database passwords are encrypted to in the pass store; empty: no pass store.
	PGPID string
	// Folder is the store's folder under ~/.password-store (default bee2); PasswordStore the whole store
	// directory when set (relative to the settings file).
	Folder        string
	PasswordStore string
}

// SyncPush is one "local:remote" entry of sync.<server>.push.
type SyncPush struct {
	Local, Remote string
	Pos           Pos
}

// DNS holds the server's names; Bee2 used the first private name as the Docker host.
type DNS struct {
	Private []string
	Public  []string
	// Other keys under dns, kept as written.
	Extra map[string]*yaml.Node
}

// Connection says how to reach a server's Docker engine.
type Connection struct {
	// Host is a Docker host URL: unix://, tcp:// or ssh://. Empty means DOCKER_HOST, else the local socket.
	Host string
	// TLS names the client certificate files, relative to the settings file when not absolute.
	TLS *TLSFiles
	// Insecure allows plain tcp:// without TLS.
	Insecure bool
	// SSH names the files of an ssh:// host, relative to the settings file when not absolute; nil for the
	// defaults (~/.ssh/known_hosts; the SSH agent's keys and ~/.ssh/id_*).
	SSH *SSHFiles
	Pos Pos
}

// TLSFiles are the PEM files of a mutual TLS connection.
type TLSFiles struct {
	CA, Cert, Key string
}

// SSHFiles are docker.ssh: the known_hosts file that holds the host's key, and a private key file to log in
// with (tried before the agent's keys); either may be empty.
type SSHFiles struct {
	KnownHosts, Identity string
}

// Docker is the top-level docker section.
type Docker struct {
	Prefix      string
	ReadTimeout time.Duration
	// Dockerfiles is the directory build_dir is looked up in, resolved to an absolute path.
	Dockerfiles string
	// SecretsDir is where {secret: name} env values are read, resolved to an absolute path (default secrets/
	// beside the settings file).
	SecretsDir string
	// Backup by server name.
	Backup map[string]*Backup
}

// Backup is docker.backup.<server>.
type Backup struct {
	Server string
	// StorageDir is as written (default ./volumes); see Settings.ResolvePath.
	StorageDir string
	Volumes    []string
	// Schedule is a cron spec (five fields, or a descriptor such as @daily); empty means no scheduled backups.
	Schedule string
	Retain   Retain
	// Compression of the archives; CompressionNone (Bee2's plain .tar) when not set.
	Compression Compression
	// Stop names applications of the server that are stopped while the backup runs and started again after.
	Stop []string
	Pos  Pos
}

// Retain says which archives survive pruning: the union of the newest Last archives and the newest archive
// of each of the most recent Daily days, Weekly ISO weeks and Monthly months that have one. All zero keeps
// every archive, as Bee2 did.
type Retain struct {
	Last, Daily, Weekly, Monthly int
}

// Any tells whether a retention policy is set.
func (r Retain) Any() bool {
	return r.Last > 0 || r.Daily > 0 || r.Weekly > 0 || r.Monthly > 0
}

// Compression is how backup archives are compressed.
type Compression string

// The compressions an archive can have; the file name ends in .tar, .tar.gz or .tar.zst.
const (
	CompressionNone Compression = "none"
	CompressionGzip Compression = "gzip"
	CompressionZstd Compression = "zstd"
)

// Compressions lists the valid values of docker.backup.<server>.compression.
var Compressions = []Compression{CompressionNone, CompressionGzip, CompressionZstd}

// Kind tells applications from jobs.
type Kind string

// The kinds of service; their names appear in container names and labels.
const (
	KindApp Kind = "app"
	KindJob Kind = "job"
)

// Service is one entry of applications or jobs.
type Service struct {
	Kind   Kind
	Name   string
	Server string

	// Image sources, in order of precedence: BuildDir, Git, Image.
	BuildDir string
	Git      string
	Image    string
	// Git options.
	Branch     string
	GitDir     string
	Dockerfile string

	// Env holds the env entries in file order, then those of the env_files (secret values).
	Env []EnvVar
	// EnvFiles are the env_file paths as written.
	EnvFiles []string
	Link     []string
	Volumes  []string
	// Ports are the published ports in file order.
	Ports []Port

	// Cmd and Entrypoint replace the image's when not nil. A string cmd is split on whitespace as Bee2 did;
	// a list is taken as it is.
	Cmd, Entrypoint []string
	User            string
	WorkingDir      string
	Hostname        string
	// Labels are the labels key (and traefik's), verbatim; bee2d's own labels cannot be set here.
	Labels map[string]string
	// Networks are the network names as written (Bee2's networks key); the first is the primary one, "network"
	// is the default network. Empty: the default network only.
	Networks []string
	// StaticIPv4 and StaticIPv6 are the container's addresses on its primary network (static_ip; ipv6_web
	// gives StaticIPv6 from the provisioner's state file).
	StaticIPv4, StaticIPv6 string
	// ExtraHosts are "host:ip" entries (internal_dns), resolved from the named applications' static_ip.
	ExtraHosts []string
	CapAdd     []string
	// DB lists the databases this container asks for (db: type or type:name).
	DB []DBRef

	// Limits and runtime options; zero values leave the engine's defaults.
	Memory    int64 // bytes
	NanoCPUs  int64 // cpus × 1e9
	PidsLimit int64
	// Restart is the restart policy; "" means unless-stopped for applications, no for jobs.
	Restart    string
	StopSignal string
	// StopGrace is how long the container gets to stop before it is killed; 0 means config.StopTimeout.
	StopGrace time.Duration
	ReadOnly  bool
	// Tmpfs maps a container path to its mount options ("" for none).
	Tmpfs   map[string]string
	Sysctls map[string]string
	Ulimits []Ulimit
	// Devices are docker run --device strings: host[:container[:permissions]].
	Devices []string
	Log     *LogConfig
	// Health is the health check (applications only); nil keeps the image's.
	Health *Healthcheck
	// Deploy is StopFirst or StartFirst (applications only); "" is StopFirst.
	Deploy string

	// envKeysAsWritten is set on a server with env_keys: as-written.
	envKeysAsWritten bool

	// Schedule is a cron spec (jobs only) on which the job runs again; empty for none.
	Schedule string
	// Poll is how often the daemon looks for a new commit of a git job; DefaultPoll when not set.
	Poll time.Duration

	// BuildArgs are given to the image build of build_dir or git (Dockerfile ARG), by name.
	BuildArgs map[string]string
	// Reload lists the files whose change makes the daemon signal the application (applications only).
	Reload []ReloadRule

	Pos Pos
}

// Port is one published port. HostIPs lists the host addresses it binds; none binds every address.
type Port struct {
	ContainerPort int
	HostPort      int
	// Proto is "tcp" or "udp".
	Proto   string
	HostIPs []string
}

// DBRef is one db entry: a database of Type (postgres, mysql, ...) for Name (the container's own name when
// the entry gives none).
type DBRef struct {
	Type, Name string
}

// Ulimit is one ulimits entry.
type Ulimit struct {
	Name       string
	Soft, Hard int64
}

// LogConfig is the log key: the container's log driver and its options.
type LogConfig struct {
	Driver  string
	Options map[string]string
}

// EnvVar is one env entry as written in the settings.
type EnvVar struct {
	Key   string
	Value EnvValue
	Pos   Pos
}

// EnvValue is an env value kept close to how YAML shows it.
type EnvValue struct {
	// Scalar values: Text is the value as written; Tag is the YAML tag (!!str, !!int, !!float, !!bool, !!null).
	Scalar bool
	Text   string
	Tag    string
	// Ref is the application a string "$name" refers to (Text without the "$"); empty otherwise. "$$..." is the
	// escape for a literal "$..." and has no Ref.
	Ref string
	// List holds the items of a sequence of scalars (used for domains lists).
	List []string
	// JSON is the JSON form of a sequence or mapping.
	JSON string
	// Job is the job a string "+name" refers to; empty otherwise.
	Job string
	// DB is set for a database value (_type^password, _type:name^password, _type^adminpass, _dbmap).
	DB *DBVar
	// Secret is set for a value read from a file ({secret: name} or an env_file); it is never shown.
	Secret *SecretSource
	Pos    Pos
}

// DBVar is a database env value: Var is "password" (of Type for Name, Name "" meaning the container's
// own), "adminpass" (of Type) or "dbmap" (every database of the server as JSON).
type DBVar struct {
	Type, Name, Var string
}

// Pos is a place in the settings file.
type Pos struct {
	Line, Col int
}

// ContainerName is the Docker name of a service: <prefix>-<kind>-<name>.
func ContainerName(prefix string, kind Kind, name string) string {
	return prefix + "-" + string(kind) + "-" + name
}

// NetworkName is the user-defined network every service of a server joins.
func NetworkName(prefix string) string {
	return prefix + "-network"
}

// Server returns the server with that name, or nil.
func (s *Settings) Server(name string) *Server {
	for _, srv := range s.Servers {
		if srv.Name == name {
			return srv
		}
	}
	return nil
}

// Application returns the first application with that name on any server, or nil. Names are unique only per
// server in Bee2's later layout: App(server, name) is the lookup to use there.
func (s *Settings) Application(name string) *Service {
	for _, a := range s.Applications {
		if a.Name == name {
			return a
		}
	}
	return nil
}

// Job returns the first job with that name on any server, or nil; JobOn(server, name) is the lookup by server.
func (s *Settings) Job(name string) *Service {
	for _, j := range s.Jobs {
		if j.Name == name {
			return j
		}
	}
	return nil
}

// ServicesOn returns the applications and jobs of one server, in file order.
func (s *Settings) ServicesOn(server string, kind Kind) []*Service {
	list := s.Applications
	if kind == KindJob {
		list = s.Jobs
	}
	var out []*Service
	for _, svc := range list {
		if svc.Server == server {
			out = append(out, svc)
		}
	}
	return out
}

// Prefix is the container name prefix of a server: its docker.<server>.prefix when set, else docker.prefix,
// else Bee2's default.
func (s *Settings) Prefix(server string) string {
	if srv := s.Server(server); srv != nil && srv.Section != nil && srv.Section.Prefix != "" {
		return srv.Section.Prefix
	}
	return s.Docker.Prefix
}

// App returns the application with that name on that server, or nil.
func (s *Settings) App(server, name string) *Service {
	for _, a := range s.Applications {
		if a.Name == name && a.Server == server {
			return a
		}
	}
	return nil
}

// JobOn returns the job with that name on that server, or nil.
func (s *Settings) JobOn(server, name string) *Service {
	for _, j := range s.Jobs {
		if j.Name == name && j.Server == server {
			return j
		}
	}
	return nil
}

// Networks returns the named networks of a server (docker.<server>.networks), in file order.
func (s *Settings) Networks(server string) []*Network {
	if srv := s.Server(server); srv != nil && srv.Section != nil {
		return srv.Section.Networks
	}
	return nil
}
