from gearjobs.cli import main

main()
