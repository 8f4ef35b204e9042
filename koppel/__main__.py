from koppel.cli import main

main()
