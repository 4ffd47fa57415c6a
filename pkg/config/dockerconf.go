package config

import (
	"os"
	"path/filepath"
)

// DockerConfDir is where, relative to the settings file, the TLS files of the servers' engines are: Bee2's
// layout, kept by `bee2d tls init`. The CA that signs every server's certificates is in it, each server's
// files in a folder named after the server.
const DockerConfDir = "conf/docker"

// The names of the files in DockerConfDir (the CA's) and in its server folders. A server's client files
// are the ones Bee2 used, and the ones bee2d reaches a server without a docker section with.
const (
	CAFile         = "ca.pem"
	CAKeyFile      = "ca-key.pem"
	LegacyCAFile   = "ca.crt" // where Bee2's Ansible role saved a server's CA
	ServerCertFile = "docker-server.crt"
	ServerKeyFile  = "docker-server.pem"
	ClientCertFile = "docker-client.crt"
	ClientKeyFile  = "docker-client.pem"
)

// ServerTLSFiles are the absolute paths of a server's engine TLS files in DockerConfDir.
type ServerTLSFiles struct {
	// CADir is DockerConfDir: CACert and CAKey are the CA that signs every server's certificates.
	CADir, CACert, CAKey string
	// Dir is the server's folder.
	Dir string
	// CA is the CA certificate in Dir a client checks the engine with: CAFile, or LegacyCAFile when only that
	// exists.
	CA string
	// CACopy is Dir's CAFile, where `tls init` copies CACert for the server and bee2d: CA, unless only Bee2's
	// LegacyCAFile is there.
	CACopy string
	// ClientCert and ClientKey are what bee2d presents to the engine; ServerCert and ServerKey what the
	// engine presents, once copied to the server.
	ClientCert, ClientKey string
	ServerCert, ServerKey string
}

// ServerTLSFiles returns where the TLS files of server's engine are, beside the settings file.
func (s *Settings) ServerTLSFiles(server string) ServerTLSFiles {
	caDir := s.ResolvePath(filepath.FromSlash(DockerConfDir))
	dir := filepath.Join(caDir, server)
	caCopy := filepath.Join(dir, CAFile)
	ca := caCopy
	if _, err := os.Stat(ca); err != nil {
		legacy := filepath.Join(dir, LegacyCAFile)
		if _, err := os.Stat(legacy); err == nil {
			ca = legacy
		}
	}
	return ServerTLSFiles{
		CADir:      caDir,
		CACert:     filepath.Join(caDir, CAFile),
		CAKey:      filepath.Join(caDir, CAKeyFile),
		Dir:        dir,
		CA:         ca,
		CACopy:     caCopy,
		ClientCert: filepath.Join(dir, ClientCertFile),
		ClientKey:  filepath.Join(dir, ClientKeyFile),
		ServerCert: filepath.Join(dir, ServerCertFile),
		ServerKey:  filepath.Join(dir, ServerKeyFile),
	}
}
