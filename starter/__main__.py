from mipro.starter.cli import main

main()
