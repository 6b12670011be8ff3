// A second S3-compatible server for dataknobs' tests and benchmarks: gofakes3 (MIT) with its
// in-memory backend, on loopback. Much faster than moto (Go, no Python in the request path),
// so benchmarks measure the client; and a second implementation keeps the S3 backend from
// relying on what only moto does.
//
// Usage: gofakes3 -addr 127.0.0.1:9320
package main

import (
	"flag"
	"log"
	"net/http"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:9320", "address to listen on")
	flag.Parse()
	faker := gofakes3.New(s3mem.New(), gofakes3.WithAutoBucket(true))
	log.Printf("gofakes3 listening on http://%s", *addr)
	log.Fatal(http.ListenAndServe(*addr, faker.Server()))
}
