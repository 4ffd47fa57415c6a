// Package backup takes, lists, verifies, prunes and restores the archives of a server's named volumes: Bee2's
// <storage_dir>/<server>/<unix-seconds>-volumes.tar[.gz|.zst], rooted at volumes/<volume>/, with a manifest
// beside it, written through a helper container and stored durably on the admin box.
package backup
