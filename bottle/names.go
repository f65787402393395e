package bottle

import (
	"fmt"
	"regexp"
	"strings"
)

// NameChecker is implemented by runtimes whose bottle names have rules
// of their own; bb checks a slug against them before any work.
type NameChecker interface {
	// CheckName returns an error explaining why bot-bottle-<slug> is not
	// a name the runtime accepts.
	CheckName(slug string) error
}

// SmolvmMaxName is the longest machine name smolvm accepts
// (smolvm 1.9.3 src/data/mod.rs MAX_VM_NAME_LENGTH).
const SmolvmMaxName = 128

// CheckSmolvmName applies smolvm 1.9.3's machine name rules
// (src/data/mod.rs validate_vm_name) to bot-bottle-<slug>: ASCII letters,
// digits, '-' and '_', starting with a letter or digit, no "--", no
// trailing '-', at most 128 characters.
func CheckSmolvmName(slug string) error {
	name := Name(slug)
	bad := ""
	switch {
	case len(name) > SmolvmMaxName:
		bad = fmt.Sprintf("it is %d characters long (smolvm allows %d)", len(name), SmolvmMaxName)
	case strings.Contains(name, "--"):
		bad = "it contains \"--\""
	case strings.HasSuffix(name, "-"):
		bad = "it ends in '-'"
	default:
		for _, c := range name {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				bad = fmt.Sprintf("it contains %q (smolvm allows letters, digits, '-' and '_')", c)
				break
			}
		}
	}
	if bad != "" {
		return fmt.Errorf("slug %q cannot name a smolvm machine: %s is not a valid machine name because %s; choose another slug (bb import --as NEW renames a snapshot)", slug, name, bad)
	}
	return nil
}

// ContainerMaxName is the longest container name Apple's container
// accepts (container 1.2.2 ManagedContainer.nameValid).
const ContainerMaxName = 63

var containerNameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]+$`)

// CheckContainerName applies Apple container 1.2.2's container name rule
// (Sources/ContainerResource/Container/ManagedContainer.swift nameValid)
// to bot-bottle-<slug>: at most 63 characters matching
// ^[a-zA-Z0-9][a-zA-Z0-9_.-]+$.
func CheckContainerName(slug string) error {
	name := Name(slug)
	switch {
	case len(name) > ContainerMaxName:
		return fmt.Errorf("slug %q cannot name an Apple container: %s is %d characters long (container allows %d, so slugs of at most %d); choose a shorter slug (bb import --as NEW renames a snapshot)",
			slug, name, len(name), ContainerMaxName, ContainerMaxName-len(Name("")))
	case !containerNameRE.MatchString(name):
		return fmt.Errorf("slug %q cannot name an Apple container: %s does not match %s", slug, name, containerNameRE)
	}
	return nil
}

// checkName applies rt's name rules, if it has any.
func checkName(rt Runtime, slug string) error {
	if nc, ok := rt.(NameChecker); ok {
		return nc.CheckName(slug)
	}
	return nil
}
