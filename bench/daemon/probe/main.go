package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/bee2d/bee2d/pkg/dockerx"
)

func main() {
	ctx := context.Background()
	cli, err := dockerx.Connect(ctx, dockerx.Endpoint{})
	if err != nil {
		panic(err)
	}
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", "/var/run/docker.sock")
	}}}
	img := "bee2ex-static:latest"
	imgs, _ := cli.ListImages(ctx)
	for _, i := range imgs {
		if len(i.Tags) > 0 {
			fmt.Println(i.Tags)
		}
	}
	_ = img
	for trial := 0; trial < 10; trial++ {
		name := fmt.Sprintf("bee2dprobe-%d", trial)
		id, err := cli.CreateContainer(ctx, dockerx.ContainerSpec{Name: name, Image: imgTag, RestartPolicy: "unless-stopped", Labels: map[string]string{"probe": "1"}, Env: []string{"PORT=8080", "ROOT=/tmp"}})
		if err != nil {
			panic(err)
		}
		cli.StartContainer(ctx, id)
		ectx, cancel := context.WithCancel(ctx)
		evs, _ := cli.Events(ectx, map[string]string{"probe": "1"})
		time.Sleep(200 * time.Millisecond)
		resp, err := hc.Post("http://docker/containers/"+id+"/kill?signal=KILL", "", nil)
		if err != nil {
			panic(err)
		}
		resp.Body.Close()
		for ev := range evs {
			if ev.Action == "die" {
				t0 := time.Now()
				n := 0
				for {
					cs, _ := cli.ListContainers(ctx)
					n++
					st := ""
					for _, c := range cs {
						if c.ID == id {
							st = c.State
						}
					}
					if st != "running" {
						fmt.Printf("trial %d: list shows %s %v after die (%d lists)\n", trial, st, time.Since(t0), n)
						break
					}
				}
				break
			}
		}
		cancel()
		cli.RemoveContainer(ctx, id)
	}
}
