// Package pki makes the certificates of a Docker engine's mutual TLS: a CA, server certificates and client
// certificates, all ECDSA P-256, written as PEM files with private keys readable by their owner only, and
// the daemon.json that has an engine use them.
package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Validity of what Issue and NewCA make when the caller does not say. The CA outlives the certificates it
// signs, so renewing a server's certificate never means reinstalling the CA everywhere.
const (
	CAValidity   = 10 * 365 * 24 * time.Hour
	CertValidity = 3 * 365 * 24 * time.Hour
	// backdate covers clocks a little behind the admin box's.
	backdate = time.Hour
)

// KeyPair is a certificate with its private key, parsed and as PEM.
type KeyPair struct {
	Cert    *x509.Certificate
	Key     *ecdsa.PrivateKey
	CertPEM []byte
	KeyPEM  []byte
}

// Usage says what a certificate is for.
type Usage int

// The usages Issue knows: a Docker engine's certificate, or the client certificate bee2d presents.
const (
	Server Usage = iota
	Client
)

// Template says what a certificate names and when it is valid. Zero times mean from an hour ago to
// CertValidity from now.
type Template struct {
	Usage      Usage
	CommonName string
	DNSNames   []string
	IPs        []net.IP
	NotBefore  time.Time
	NotAfter   time.Time
}

// NewCA makes a self-signed CA valid from an hour before now for validity (CAValidity when 0).
func NewCA(commonName string, now time.Time, validity time.Duration) (*KeyPair, error) {
	if validity <= 0 {
		validity = CAValidity
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	return sign(tmpl, key, nil)
}

// Issue makes a new key and a certificate for it signed by ca.
func (ca *KeyPair) Issue(t Template) (*KeyPair, error) {
	if !ca.Cert.IsCA {
		return nil, errors.New("pki: the signing certificate is not a CA")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	if t.NotBefore.IsZero() {
		t.NotBefore = now.Add(-backdate)
	}
	if t.NotAfter.IsZero() {
		t.NotAfter = now.Add(CertValidity)
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: t.CommonName},
		DNSNames:    t.DNSNames,
		IPAddresses: t.IPs,
		NotBefore:   t.NotBefore,
		NotAfter:    t.NotAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature,
	}
	switch t.Usage {
	case Server:
		if len(t.DNSNames) == 0 && len(t.IPs) == 0 {
			return nil, errors.New("pki: a server certificate needs at least one name or address")
		}
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	case Client:
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	default:
		return nil, fmt.Errorf("pki: unknown usage %d", t.Usage)
	}
	return sign(tmpl, key, ca)
}

// sign completes tmpl with a serial number and key ids and signs it with parent, or self-signs it when
// parent is nil.
func sign(tmpl *x509.Certificate, key *ecdsa.PrivateKey, parent *KeyPair) (*KeyPair, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, err
	}
	id := sha256.Sum256(pub)
	tmpl.SubjectKeyId = id[:20]
	issuer, signer := tmpl, key
	if parent != nil {
		issuer, signer = parent.Cert, parent.Key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, &key.PublicKey, signer)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return &KeyPair{
		Cert:    cert,
		Key:     key,
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}, nil
}

// Load reads a certificate and its ECDSA key from PEM files, as Save writes them.
func Load(certFile, keyFile string) (*KeyPair, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, err
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, err
	}
	cb, _ := pem.Decode(certPEM)
	if cb == nil || cb.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%s: no PEM certificate", certFile)
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", certFile, err)
	}
	kb, _ := pem.Decode(keyPEM)
	if kb == nil {
		return nil, fmt.Errorf("%s: no PEM key", keyFile)
	}
	var key any
	switch kb.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(kb.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(kb.Bytes)
	default:
		return nil, fmt.Errorf("%s: unsupported key type %q", keyFile, kb.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", keyFile, err)
	}
	ec, ok := key.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s: not an ECDSA key", keyFile)
	}
	if !ec.PublicKey.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("%s does not belong to %s", keyFile, certFile)
	}
	return &KeyPair{Cert: cert, Key: ec, CertPEM: certPEM, KeyPEM: keyPEM}, nil
}

// Save writes the certificate (mode 0644) and the key (mode 0600), each whole or not at all.
func (kp *KeyPair) Save(certFile, keyFile string) error {
	if err := WriteFile(keyFile, kp.KeyPEM, 0o600); err != nil {
		return err
	}
	return WriteFile(certFile, kp.CertPEM, 0o644)
}

// WriteFile writes data to path through a temporary file in the same directory, synced and renamed, so
// path never holds a partial file; the temporary file has perm from the start, so a key is never readable
// by others, not even briefly. Missing directories are made (0755).
func WriteFile(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(perm); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	ok = true
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
