// The etcd server of the local test bed: etcd's own entry point, built from its Go module at the
// version go.mod pins (etcd publishes no main package of the server module itself).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
