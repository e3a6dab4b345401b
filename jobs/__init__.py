"""Job graphs: ``build_pipeline`` wires the operators; thin ``main()``s run them."""
