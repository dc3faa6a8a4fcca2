// Command etcd is etcd's own server main (go.etcd.io/etcd/server/v3/etcdmain), built from the
// pinned module in go.mod because etcd's repository root (which holds its main.go) replaces its
// modules with local folders and so cannot be built from the module proxy.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
