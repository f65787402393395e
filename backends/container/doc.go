// Package container is the macos-container backend: bottles are
// containers of Apple's container CLI (macOS only, no Go API), which bb
// runs as an external command ("container", found on PATH; see
// Runtime.Binary) through backends/clitool, as the smolvm backend does.
//
//	list/inspect  container list --all --format json
//	commit        container exec --user root NAME tar --create ... --file=- --directory=/ .
//	              (default; --method export: container export NAME)
//	load          container image load -i FILE, FILE an OCI layout tar (archive.WriteImage) whose
//	              index.json names the image docker.io/library/bot-bottle-committed-SLUG:latest;
//	              when container has an earlier snapshot under that name, FILE leaves out its layers
//	resume        container run --detach --name bot-bottle-SLUG REF, then /tmp and
//	              /var/tmp recreated root:root 1777 through container exec
//
// Why exec is the default: it streams straight from the guest's GNU tar
// into the pipeline and works with every container release, keeping all
// xattrs. container export needs 1.2.1 or later for a running container,
// writes the whole uncompressed root filesystem to a temporary file on the
// host before the first byte reaches bb, and reads each file whole into
// memory; its advantages are that it freezes the filesystem (a consistent
// snapshot) and needs no tar in the guest, so bb offers it with
// --method export. Measurements on the stand-in: internal/testing/standin/README.md.
//
// Why image load and not a pull from bb's registry: both end in the same
// import (containerization 0.40.1 ImageStore+Import.swift), which takes
// every blob its image store already holds from the store and reads the
// archive or the registry only for the others (:144-154); so a load whose
// archive holds only the manifest, the config and the new layers costs
// what changed, as a pull would. The load needs no listening socket and
// no rename of the localhost:PORT reference a pull names the image by,
// and it matches every platform (ImageStore+OCILayout.swift:77) where a
// pull follows CONTAINER_DEFAULT_PLATFORM when the user set it; it works
// with every release since 0.5. When the store lost a layer the
// archive left out, the import fails with missingContent and bb loads
// the whole snapshot.
package container
