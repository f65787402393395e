// Package smolvm is the smolmachines backend: bottles are smolvm microVMs,
// driven through the smolvm CLI ("smolvm", found on PATH; see
// Runtime.Binary) with backends/clitool, as the container backend does.
//
//	list/inspect  smolvm machine ls --json
//	commit        smolvm machine exec --name NAME -- true         (probe: fails while an
//	              interactive session holds the VM)
//	              smolvm machine exec --name NAME -i -- tar --create ... --file=- ...
//	              (-i without -t is the only exec mode that relays binary output
//	              uncapped: the others capture at most 11 MiB)
//	              or, with --method cp or when -i is unavailable, tar to
//	              /var/tmp in the guest, smolvm machine cp NAME:FILE HOST, rm -f
//	load          pack.Pack: the snapshot served on 127.0.0.1 for
//	              smolvm pack create --image localhost:PORT/... -o <home>/state/SLUG/committed-smolmachine;
//	              committed-image records the absolute path of committed-smolmachine.smolmachine
//	resume        smolvm machine create --name NAME --from FILE.smolmachine,
//	              smolvm machine start --name NAME, then /tmp and /var/tmp
//	              recreated root:root 1777 through exec
//
// Snapshots leave ./tmp and ./var/tmp out (older smolvm packs re-owned
// every file to the host user, and stale temp directories then belonged
// to the wrong uid) and are always one flattened layer (smolvm's in-guest
// flattening mishandles hard links across layers).
//
// smolvm cannot show the config of the image a VM was created from, so a
// snapshot's config is built from what the VM shows: the environment a
// command run by machine exec gets (the image's Env plus the machine's),
// and the entrypoint and command of machine ls --json. It has no USER:
// machine exec runs commands as the image's USER, and both bb and the
// launcher's /tmp repair need root there.
package smolvm
