// Package e2e holds end-to-end tests that bring up whole stacks on the local Docker engine: the front end
// with the bee2d binary, with the outside world (Let's Encrypt, DNS) played by test servers on this machine;
// DBSetup against PostgreSQL and MariaDB; and, with the bee2d binary again, the database wiring of Bee2's
// later layout (db:, _postgres^password, _dbmap). Every image is built on one offline Debian base image.
package e2e
