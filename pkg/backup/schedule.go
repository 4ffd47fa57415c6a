package backup

import (
	"time"

	"github.com/bee2d/bee2d/pkg/config"
)

// NextRun tells when the server's scheduled backup is due: the first time its schedule fires after the
// newest archive bee2d wrote, so that a backup missed while the daemon was down runs as soon as it is back;
// now when there is no archive yet. ok is false when the server has no schedule.
func NextRun(s *config.Settings, server string, now time.Time) (next time.Time, ok bool, err error) {
	b := s.Docker.Backup[server]
	if b == nil || b.Schedule == "" {
		return time.Time{}, false, nil
	}
	sched, err := config.ParseSchedule(b.Schedule)
	if err != nil {
		return time.Time{}, false, err
	}
	last, found, err := Latest(s, server)
	if err != nil {
		return time.Time{}, false, err
	}
	if !found {
		return now, true, nil
	}
	return sched.Next(last.Time), true, nil
}

// Latest returns the newest archive of the server that bee2d wrote (with its manifest): the last successful
// backup, whose time and size seed the metrics when the daemon starts.
func Latest(s *config.Settings, server string) (Archive, bool, error) {
	dir, err := Dir(s, server)
	if err != nil {
		return Archive{}, false, err
	}
	list, err := List(dir)
	if err != nil {
		return Archive{}, false, err
	}
	for i := len(list) - 1; i >= 0; i-- {
		if list[i].Bee2d() {
			return list[i], true, nil
		}
	}
	return Archive{}, false, nil
}
