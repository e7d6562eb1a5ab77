from edgedeploy.cli.main import main

main()
