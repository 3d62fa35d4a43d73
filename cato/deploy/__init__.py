"""Deploy: compile a study's point into a zkg package, and serve its model beside Zeek."""
