// Package dockerfiles holds the images applications build with build_dir: HAProxy, CertBot and NginxStatic,
// the front end of Bee2's blog stack. Each folder is one build context; this package has only their tests,
// which run the configuration scripts on this machine and check what they write with haproxy -c and
// nginx -t.
package dockerfiles
