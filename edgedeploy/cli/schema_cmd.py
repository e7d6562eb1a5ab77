import json

import click

from edgedeploy.schemas import schema

SCHEMAS = ("recipe", "manifest", "profile")


@click.command("schema")
@click.argument("what", type=click.Choice(SCHEMAS))
def command(what):
    """Print the JSON Schema of a recipe, of an artifact's manifest (edgedeploy.json) or of a device profile.

    For completion in editors, put this first in a recipe:
    # yaml-language-server: $schema=recipe.schema.json
    after 'edgedeploy schema recipe > recipe.schema.json'.
    """

    click.echo(json.dumps(schema(what), indent=2))
