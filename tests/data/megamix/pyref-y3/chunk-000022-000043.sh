#!/bin/bash

if [[ -n $_CONDOR_SCRATCH_DIR ]]; then
    # the condor system creates a scratch directory for us,
    # and cleans up afterward
    tmpdir=$_CONDOR_SCRATCH_DIR
    export TMPDIR=$tmpdir
else
    # otherwise use the TMPDIR
    tmpdir=$TMPDIR
    mkdir -p $tmpdir
fi

export OMP_NUM_THREADS=1

logfile="@OUT@/e2e01max/DES0000+0000/chunk000022-000043/DES0000+0000-e2e01max-000022-000043.log"

logbase=$(basename $logfile)
tmplog=$tmpdir/$logbase


config="@DIR@/run-e2e01max.yaml"

meds="@DIR@/DES0000+0000_r_meds-e2e.fits"

outfile="@OUT@/e2e01max/DES0000+0000/chunk000022-000043/DES0000+0000-e2e01max-000022-000043.fits"
start=22
stop=43

ngmixit                                   \
    --fof-range=$start,$stop              \
    --work-dir=$tmpdir                    \
                             \
                              \
                                \
                                 \
                                 \
    --seed=199900596                            \
    $config $outfile $meds &> $tmplog


mv -vf $tmplog $logfile
