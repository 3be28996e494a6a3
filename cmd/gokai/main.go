package main

import "github.com/gokai-kv/gokai/cli"

func main() {
	cli.Main(cli.Program{Name: "gokai", Services: []cli.Service{cli.KV}})
}
