package cli

import "github.com/urfave/cli/v2"

// Commands returns the user commands, in the order `gearbox --help` lists
// them: the cluster's members, logging in, and the commands over the
// broker's REST API.
func Commands() []*cli.Command {
	return []*cli.Command{
		membersCommand(),
		loginCommand(),
		logoutCommand(),
		tokenCommand(),
		domainCommand(),
		appCommand(),
		userCommand(),
		nodeCommand(),
		gearCommand(),
		envCommand(),
		routerCommand(),
		alertsCommand(),
		gitCredentialCommand(),
		gitHookCommand(),
	}
}
