"""yima_sdk: write, test and pack yima mini-apps; verify yima codes offline on terminals."""
