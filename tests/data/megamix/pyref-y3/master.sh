#!/bin/bash

# this will be a path to a script
cmd="$1"
$cmd
            
