// Package dockerfiles holds the images applications build with build_dir: HAProxy, CertBot and NginxStatic,
// the front end of Bee2's blog stack, and DBSetup, the job that creates the applications' databases (its
// program is the Go command in DBSetup, compiled into that folder by make dbsetup). Each folder is one build
// context; this package has only the front end's tests, which run the configuration scripts on this machine
// and check what they write with haproxy -c and nginx -t.
package dockerfiles
