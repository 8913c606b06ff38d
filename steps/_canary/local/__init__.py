"""The local deployment (`mlops deploy`): servers, router, control client and the local canary controller."""
