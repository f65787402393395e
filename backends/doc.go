// Package backends holds one package per runtime bottles run on. Each
// implements bottle.Runtime and hands the snapshot pipeline a tar stream:
//
//	docker/     Docker Engine API (exec tar or export), docker load
//	container/  Apple's container CLI (exec tar or export), image load
//	smolvm/     smolvm CLI (exec -i tar or tar-to-file + cp), pack create
//	dir/        a root filesystem directory on this host (no runtime)
//	tarcmd/     the GNU tar command line and the process stream they share
//	clitool/    what container/ and smolvm/ share in driving a runtime's CLI
package backends
