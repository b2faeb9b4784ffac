from vton.cli import main

main()
